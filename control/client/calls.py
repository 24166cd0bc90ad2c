"""One API call as data, and the descriptor that runs it on the sync or the async client.

An endpoint is written once, as a function that builds a :class:`Call` (method, path, body and
the wire model of the answer). Reached through a :class:`SyncSender` it runs and returns the
model; through an :class:`AsyncSender` it returns an awaitable of it. So both clients share every
endpoint, and a type checker sees the exact answer type of each call on each client.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from pydantic import TypeAdapter, ValidationError

from control.client.errors import UnexpectedAnswer

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """An API request and the type of its answer (None: no content expected). Build one with
    :func:`call`, :func:`no_content` or :func:`untyped`."""

    method: str
    path: str
    answer: Any
    params: dict[str, Any] | None = None
    json: Any = None
    content: Any = None

    def decode(self, data: Any) -> T:
        """The answer's JSON as its wire model; :class:`UnexpectedAnswer` when it is not one."""
        if self.answer is None:
            return None  # type: ignore[return-value]  # Call[None]: nothing to decode
        try:
            return _adapter(self.answer).validate_python(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the answer"
            raise UnexpectedAnswer(
                f"The API's answer to {self.method} {self.path} is not what this client expects"
                f" ({where}: {problem['msg'].lower()}); are yard and the server the same version?"
            ) from None


def call(method: str, path: str, answer: type[T], *, params: dict[str, Any] | None = None, json: Any = None) -> Call[T]:
    """A call answered with JSON of the wire type ``answer``."""
    return Call(method, path, answer, params, json)


@functools.cache
def _adapter(answer: Any) -> TypeAdapter[Any]:
    # Built on first use: ~50 adapters at import would cost every CLI start.
    return TypeAdapter(answer)


def no_content(method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Call[None]:
    """A call whose answer carries nothing (204)."""
    return Call(method, path, None, params, json)


def untyped(
    method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None, content: Any = None
) -> Call[Any]:
    """A call whose JSON answer is passed on as it came (a develop server's own answers)."""
    return Call(method, path, Any, params, json, content)


class SyncSender:
    """A client that sends calls and waits for the answer."""

    def send(self, call: Call[T]) -> T:
        raise NotImplementedError


class AsyncSender:
    """A client whose calls return awaitables."""

    async def send(self, call: Call[T]) -> T:
        raise NotImplementedError


class endpoint(Generic[P, T]):
    """Turns a function building a :class:`Call` into a method of both clients."""

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        self._build = build
        functools.update_wrapper(self, build)  # type: ignore[arg-type]

    @overload
    def __get__(self, client: None, owner: type) -> endpoint[P, T]: ...

    @overload
    def __get__(self, client: SyncSender, owner: type) -> Callable[P, T]: ...

    @overload
    def __get__(self, client: AsyncSender, owner: type) -> Callable[P, Awaitable[T]]: ...

    def __get__(self, client: Any, owner: type) -> Any:
        if client is None:
            return self
        build = self._build

        def send(*args: P.args, **kwargs: P.kwargs) -> Any:
            return client.send(build(client, *args, **kwargs))

        send.__name__ = build.__name__
        send.__doc__ = build.__doc__
        return send
