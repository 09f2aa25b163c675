# Type stubs for ich.dicom (see dicom.py for the documentation).
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._util import _StrPath


LIMIT_NAMES: Tuple[str, ...]

def default_dicom_limits() -> Dict[str, int]: ...
def dicom_limits() -> Dict[str, int]: ...
def set_dicom_limits(**limits: Optional[int]) -> Dict[str, int]: ...

class DicomImage:
    pixels: npt.NDArray[Any]
    hu: npt.NDArray[np.float32]
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    sample_bits: int
    monochrome1: bool
    instance_number: int
    rescale_slope: float
    rescale_intercept: float
    pixel_spacing: Tuple[float, float]
    slice_thickness: float
    image_position: Tuple[float, float, float]
    window_center: float
    window_width: float
    photometric: str
    modality: str
    transfer_syntax: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    def __init__(self, pixels: npt.NDArray[Any], hu: npt.NDArray[np.float32],
                 info: Mapping[str, Any]) -> None: ...
    @property
    def shape(self) -> Tuple[int, int]: ...
    @property
    def metadata(self) -> Dict[str, Any]: ...

def read_dicom(path: _StrPath, limits: Optional[Mapping[str, Optional[int]]] = ...) -> DicomImage: ...
def read_dicom_bytes(data: Union[bytes, bytearray, memoryview], name: Optional[str] = ...,
                     limits: Optional[Mapping[str, Optional[int]]] = ...) -> DicomImage: ...
def write_ct(path: _StrPath, pixels: npt.ArrayLike, *, rescale_slope: float = ...,
             rescale_intercept: float = ..., pixel_spacing: Tuple[float, float] = ...,
             slice_thickness: float = ..., image_position: Tuple[float, float, float] = ...,
             instance_number: int = ..., window_center: Optional[float] = ...,
             window_width: Optional[float] = ..., patient_id: Optional[str] = ...,
             study_instance_uid: Optional[str] = ..., series_instance_uid: Optional[str] = ...,
             sop_instance_uid: Optional[str] = ...) -> None: ...
