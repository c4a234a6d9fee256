"""Tasks and data: keyword spotting (Speech Commands layout, MFCC) and image classification."""
from .audio import AudioFormatError, read_wav, resample, write_wav
from .images import ImageTaskConfig, load_cifar10, load_digits_task, load_faces_task, load_image_folder
from .mfcc import MfccConfig, mfcc
from .speech_commands import CLASS_NAMES, KwsConfig, load_speech_commands
from .synthesize_kws import MissingToolError, SynthesisConfig, synthesize_speech_commands
from .task_data import Split, TaskData

__all__ = [
    "AudioFormatError", "CLASS_NAMES", "ImageTaskConfig", "KwsConfig", "MfccConfig", "MissingToolError", "Split",
    "SynthesisConfig", "TaskData", "load_cifar10", "load_digits_task", "load_faces_task", "load_image_folder",
    "load_speech_commands", "mfcc", "read_wav", "resample", "synthesize_speech_commands", "write_wav",
]
