"""lec4: the library behind the lecture-4 book (CMU 10-423/10-623 Generative AI).

Pretraining vs. fine-tuning, modern Transformers (KV cache, RoPE, GQA, sliding-window
attention) and CNNs. Like `d2l` for Dive into Deep Learning, every number and figure of
the book is computed by functions defined here, and every function is tested.

The graded functions of the assignments (efficient RoPE, vectorized GQA attention,
sliding-chunks attention, conv2d / max-pool backward) are deliberately *not* here.
"""
from lec4.utils import get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "__version__"]
