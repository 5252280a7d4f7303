"""The array types of the flow: a window's logits and its best-path labels (numpy only)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Logits = NDArray[np.float32]
"""(frames, vocab) scores of one utterance or window."""


Labels = NDArray[np.int64]
"""Best-path symbol id of each frame."""
