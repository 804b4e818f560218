from typing import SupportsIndex

from _typeshed import FileDescriptorLike, WriteableBuffer

def spin_recv_into(
    sock: FileDescriptorLike, buffer: WriteableBuffer, budget_ns: SupportsIndex, /
) -> int: ...
