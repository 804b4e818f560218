import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AngleUnit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANGLE_UNIT_RADIANS: _ClassVar[AngleUnit]
    ANGLE_UNIT_DEGREES: _ClassVar[AngleUnit]

class PluginState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLUGIN_STATE_UNINITIALIZED: _ClassVar[PluginState]
    PLUGIN_STATE_INITIALIZING: _ClassVar[PluginState]
    PLUGIN_STATE_READY: _ClassVar[PluginState]
    PLUGIN_STATE_PROCESSING: _ClassVar[PluginState]
    PLUGIN_STATE_ERROR: _ClassVar[PluginState]
    PLUGIN_STATE_SHUTTING_DOWN: _ClassVar[PluginState]
ANGLE_UNIT_RADIANS: AngleUnit
ANGLE_UNIT_DEGREES: AngleUnit
PLUGIN_STATE_UNINITIALIZED: PluginState
PLUGIN_STATE_INITIALIZING: PluginState
PLUGIN_STATE_READY: PluginState
PLUGIN_STATE_PROCESSING: PluginState
PLUGIN_STATE_ERROR: PluginState
PLUGIN_STATE_SHUTTING_DOWN: PluginState

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Config(_message.Message):
    __slots__ = ("precision", "max_value", "angle_unit", "cache_size")
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    ANGLE_UNIT_FIELD_NUMBER: _ClassVar[int]
    CACHE_SIZE_FIELD_NUMBER: _ClassVar[int]
    precision: int
    max_value: float
    angle_unit: AngleUnit
    cache_size: int
    def __init__(self, precision: _Optional[int] = ..., max_value: _Optional[float] = ..., angle_unit: _Optional[_Union[AngleUnit, str]] = ..., cache_size: _Optional[int] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("state", "message", "start_time", "uptime_seconds", "request_count", "average_latency_ms")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    state: PluginState
    message: str
    start_time: _timestamp_pb2.Timestamp
    uptime_seconds: float
    request_count: int
    average_latency_ms: float
    def __init__(self, state: _Optional[_Union[PluginState, str]] = ..., message: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime_seconds: _Optional[float] = ..., request_count: _Optional[int] = ..., average_latency_ms: _Optional[float] = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("name", "version", "description", "supported_operations", "config")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    supported_operations: _containers.RepeatedScalarFieldContainer[str]
    config: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., supported_operations: _Optional[_Iterable[str]] = ..., config: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BinaryRequest(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: float
    b: float
    def __init__(self, a: _Optional[float] = ..., b: _Optional[float] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: float
    def __init__(self, value: _Optional[float] = ...) -> None: ...

class BatchAddRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[BinaryRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[BinaryRequest, _Mapping]]] = ...) -> None: ...

class AddResponse(_message.Message):
    __slots__ = ("result", "error")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result: float
    error: str
    def __init__(self, result: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class BatchAddResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[AddResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[AddResponse, _Mapping]]] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("op", "a", "b")
    OP_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    op: str
    a: float
    b: float
    def __init__(self, op: _Optional[str] = ..., a: _Optional[float] = ..., b: _Optional[float] = ...) -> None: ...

class BatchCalculateRequest(_message.Message):
    __slots__ = ("operations",)
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    def __init__(self, operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ...) -> None: ...

class OperationResult(_message.Message):
    __slots__ = ("value", "error")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    value: float
    error: str
    def __init__(self, value: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class BatchCalculateResponse(_message.Message):
    __slots__ = ("results", "succeeded", "failed", "duration_ms")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[OperationResult]
    succeeded: int
    failed: int
    duration_ms: float
    def __init__(self, results: _Optional[_Iterable[_Union[OperationResult, _Mapping]]] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., duration_ms: _Optional[float] = ...) -> None: ...

class AngleRequest(_message.Message):
    __slots__ = ("angle",)
    ANGLE_FIELD_NUMBER: _ClassVar[int]
    angle: float
    def __init__(self, angle: _Optional[float] = ...) -> None: ...

class LogRequest(_message.Message):
    __slots__ = ("base", "value")
    BASE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    base: float
    value: float
    def __init__(self, base: _Optional[float] = ..., value: _Optional[float] = ...) -> None: ...

class PowRequest(_message.Message):
    __slots__ = ("base", "exp")
    BASE_FIELD_NUMBER: _ClassVar[int]
    EXP_FIELD_NUMBER: _ClassVar[int]
    base: float
    exp: float
    def __init__(self, base: _Optional[float] = ..., exp: _Optional[float] = ...) -> None: ...

class SqrtRequest(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: float
    def __init__(self, value: _Optional[float] = ...) -> None: ...

class AngleUnitMessage(_message.Message):
    __slots__ = ("unit",)
    UNIT_FIELD_NUMBER: _ClassVar[int]
    unit: AngleUnit
    def __init__(self, unit: _Optional[_Union[AngleUnit, str]] = ...) -> None: ...
