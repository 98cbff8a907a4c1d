from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("job", "round", "seq", "sender", "purpose", "chunk", "last", "dtype", "length", "payload")
    JOB_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    job: str
    round: int
    seq: int
    sender: str
    purpose: str
    chunk: int
    last: bool
    dtype: str
    length: int
    payload: bytes
    def __init__(self, job: _Optional[str] = ..., round: _Optional[int] = ..., seq: _Optional[int] = ..., sender: _Optional[str] = ..., purpose: _Optional[str] = ..., chunk: _Optional[int] = ..., last: _Optional[bool] = ..., dtype: _Optional[str] = ..., length: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("name", "federation", "status")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FEDERATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    federation: str
    status: str
    def __init__(self, name: _Optional[str] = ..., federation: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...
