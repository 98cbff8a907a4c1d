from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("name", "federation", "status", "data_port")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FEDERATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DATA_PORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    federation: str
    status: str
    data_port: int
    def __init__(self, name: _Optional[str] = ..., federation: _Optional[str] = ..., status: _Optional[str] = ..., data_port: _Optional[int] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "frac_bits", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    FRAC_BITS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    frac_bits: int
    data: bytes
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., frac_bits: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("signed_job",)
    SIGNED_JOB_FIELD_NUMBER: _ClassVar[int]
    signed_job: bytes
    def __init__(self, signed_job: _Optional[bytes] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("job", "party", "ok", "failure_kind", "failure", "outputs", "public_names", "rounds", "payload_bytes", "wire_bytes", "seconds", "output_key", "online_seconds")
    JOB_FIELD_NUMBER: _ClassVar[int]
    PARTY_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    FAILURE_KIND_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    WIRE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_KEY_FIELD_NUMBER: _ClassVar[int]
    ONLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    job: str
    party: str
    ok: bool
    failure_kind: str
    failure: str
    outputs: _containers.RepeatedCompositeFieldContainer[Tensor]
    public_names: _containers.RepeatedScalarFieldContainer[str]
    rounds: int
    payload_bytes: int
    wire_bytes: int
    seconds: float
    output_key: bytes
    online_seconds: float
    def __init__(self, job: _Optional[str] = ..., party: _Optional[str] = ..., ok: _Optional[bool] = ..., failure_kind: _Optional[str] = ..., failure: _Optional[str] = ..., outputs: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., public_names: _Optional[_Iterable[str]] = ..., rounds: _Optional[int] = ..., payload_bytes: _Optional[int] = ..., wire_bytes: _Optional[int] = ..., seconds: _Optional[float] = ..., output_key: _Optional[bytes] = ..., online_seconds: _Optional[float] = ...) -> None: ...

class ChainMessage(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ChainAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProvisionRequest(_message.Message):
    __slots__ = ("signed_job", "plan")
    SIGNED_JOB_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    signed_job: bytes
    plan: str
    def __init__(self, signed_job: _Optional[bytes] = ..., plan: _Optional[str] = ...) -> None: ...

class ProvisionChunk(_message.Message):
    __slots__ = ("seed", "item", "component", "chunk", "last", "payload")
    SEED_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    seed: bytes
    item: int
    component: int
    chunk: int
    last: bool
    payload: bytes
    def __init__(self, seed: _Optional[bytes] = ..., item: _Optional[int] = ..., component: _Optional[int] = ..., chunk: _Optional[int] = ..., last: _Optional[bool] = ..., payload: _Optional[bytes] = ...) -> None: ...
