# Type stubs for ich.train (see train.py for the documentation).
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy.typing as npt

from ._util import _StrPath
from .dataset import Dataset
from .model import Model
from .optim import Optimizer

__all__ = ["train", "evaluate", "History"]

class History(List[Dict[str, Any]]):
    best_epoch: int
    stopped_early: bool
    csv: str

def train(model: Model, optimizer: Optimizer, train_dataset: Dataset,
          val_dataset: Optional[Dataset] = ..., epochs: int = ...,
          pos_weight: Optional[npt.ArrayLike] = ..., balanced: bool = ...,
          clip_norm: float = ..., schedule: Union[None, bool, Mapping[str, Any]] = ...,
          patience: int = ..., min_delta: float = ..., restore_best: bool = ...,
          warmup_epochs: int = ..., warmup_trainable: Optional[str] = ...,
          cascade_mask: Optional[bool] = ..., checkpoint_dir: Optional[_StrPath] = ...,
          resume: Optional[_StrPath] = ...,
          progress: Optional[Callable[[Dict[str, Any]], object]] = ...,
          staged: Optional[bool] = ..., stage_epochs: Optional[Sequence[int]] = ...,
          finetune_lr_factor: float = ...) -> History: ...
def evaluate(model: Model, dataset: Dataset, pos_weight: Optional[npt.ArrayLike] = ...,
             cascade_mask: Optional[bool] = ...,
             progress: Optional[Callable[[int, int], object]] = ...) -> Tuple[float, float]: ...
