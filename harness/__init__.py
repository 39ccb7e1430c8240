"""sfteval: evaluate supervised fine-tuned checkpoints per task_type, comparatively."""

__version__ = "0.1.0"
