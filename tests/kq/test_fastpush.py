"""FastPush, the Pusher's C hot path, on its own (no broker) and as packaged."""

from __future__ import annotations

import functools
import gc
import inspect
import os
import subprocess
import sys
import sysconfig
import threading
import weakref
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

# The C FastPush the Pusher uses, or None where zeroqueue.kq._fastpush is not built.
try:
    from zeroqueue.kq._fastpush import FastPush as _FastPush
except ImportError:
    FastPush: type[_FastPush] | None = None
else:
    FastPush = _FastPush

ROOT = Path(__file__).resolve().parents[2]

needs_fast_push = pytest.mark.skipif(FastPush is None, reason="zeroqueue.kq._fastpush not built")


@pytest.mark.skipif(
    os.environ.get("ZEROQUEUE_REQUIRE_FASTPUSH") != "1",
    reason="only where the machine has a C compiler: .ci/run sets ZEROQUEUE_REQUIRE_FASTPUSH=1",
)
def test_the_c_hot_path_is_built() -> None:
    # A pure-Python fallback on a machine that can compile would go unnoticed.
    assert FastPush is not None, "zeroqueue.kq._fastpush did not build: see pip install -v"


class Calls:
    """Notes every call it is given, then raises ``raises`` if there is one."""

    def __init__(self, raises: BaseException | None = None) -> None:
        self.calls: list[tuple[tuple[object, ...], dict[str, object]]] = []
        self.raises = raises

    def note(self, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        self.calls.append((args, kwargs))
        if self.raises is not None:
            raise self.raises


class Produce(Calls):
    """Stands in for produce(), noting every call; FastPush ignores what it returns."""

    def __call__(self, *args: object, **kwargs: object) -> str:
        self.note(args, kwargs)
        return "ignored"


class Recorder(Calls):
    """Stands in for the Python fallback and for the retry, noting every call."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        self.note(args, kwargs)


def fast(
    produce: Callable[..., object],
    fallback: Callable[..., None],
    retry: Callable[..., None] | None = None,
    *,
    keyed: bool = True,
    retry_on: tuple[type[BaseException], ...] = (BufferError, TypeError),
) -> Callable[..., object]:
    assert FastPush is not None
    return FastPush(produce, "orders", fallback, retry or Recorder(), retry_on, keyed)


@needs_fast_push
def test_a_keyed_push_reaches_produce_as_topic_value_key() -> None:
    produce, fallback = Produce(), Recorder()
    push_with_key = fast(produce, fallback)
    assert push_with_key(b"user-1", b"paid") is None
    assert produce.calls == [(("orders", b"paid", b"user-1"), {})]
    assert fallback.calls == []


@needs_fast_push
def test_a_push_without_key_reaches_produce_as_topic_value() -> None:
    produce, fallback = Produce(), Recorder()
    push = fast(produce, fallback, keyed=False)
    push("paid")
    assert produce.calls == [(("orders", "paid"), {})]
    assert fallback.calls == []


@needs_fast_push
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("k", "v", {"trace": b"1"}), {}),
        (("k", "v"), {"headers": {"trace": b"1"}}),
        (("k",), {"value": "v"}),
        ((), {"key": "k", "value": "v"}),
        (("k",), {}),
        (("k", "v", None, "extra"), {}),
    ],
)
def test_any_other_call_goes_to_the_fallback_unchanged(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    produce, fallback = Produce(), Recorder()
    fast(produce, fallback)(*args, **kwargs)
    assert produce.calls == []
    assert fallback.calls == [(args, kwargs)]


@needs_fast_push
@pytest.mark.parametrize("error", [BufferError("queue full"), TypeError("bad key")])
def test_an_error_the_retry_handles_goes_there_once(error: BaseException) -> None:
    produce, fallback, retry = Produce(raises=error), Recorder(), Recorder()
    fast(produce, fallback, retry)("k", "v")
    assert len(produce.calls) == 1
    assert retry.calls == [(("k", "v"), {})]
    assert fallback.calls == []


@needs_fast_push
@pytest.mark.parametrize("error", [ValueError("not retried"), KeyboardInterrupt()])
def test_any_other_error_propagates_without_the_fallback(error: BaseException) -> None:
    produce, fallback, retry = Produce(raises=error), Recorder(), Recorder()
    with pytest.raises(type(error)):
        fast(produce, fallback, retry)("k", "v")
    assert fallback.calls == retry.calls == []


@needs_fast_push
def test_swapping_produce_takes_effect_on_the_next_push() -> None:
    refusal = Produce(raises=RuntimeError("closed"))
    push_with_key: Callable[..., object]

    def produce_then_close(*args: object) -> None:
        # close() swapping produce while this push is inside it
        push_with_key.produce = refusal  # type: ignore[attr-defined]

    push_with_key = fast(produce_then_close, Recorder())
    del produce_then_close  # the type now holds the only reference
    push_with_key("k", "first")
    with pytest.raises(RuntimeError, match="closed"):
        push_with_key("k", "second")
    assert refusal.calls == [(("orders", "second", "k"), {})]


@needs_fast_push
def test_threads_pushing_while_produce_is_swapped_lose_nothing() -> None:
    # given four threads pushing while another thread keeps swapping produce
    before, after = Produce(), Produce()
    push_with_key = fast(before, Recorder())
    pushes_per_thread = 20_000
    swapped = threading.Event()

    def pushing() -> None:
        for i in range(pushes_per_thread):
            push_with_key("k", i)

    def swapping() -> None:
        for _ in range(1_000):
            push_with_key.produce = after  # type: ignore[attr-defined]
            push_with_key.produce = before  # type: ignore[attr-defined]
        push_with_key.produce = after  # type: ignore[attr-defined]
        swapped.set()

    threads = [threading.Thread(target=pushing) for _ in range(4)]
    threads.append(threading.Thread(target=swapping))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then every push reached one of the two, once
    assert swapped.is_set()
    assert len(before.calls) + len(after.calls) == 4 * pushes_per_thread
    push_with_key("k", "last")
    assert after.calls[-1] == (("orders", "last", "k"), {})


@needs_fast_push
def test_bad_arguments_are_named() -> None:
    assert FastPush is not None
    any_ = Recorder()
    with pytest.raises(TypeError, match="produce must be callable, got 42"):
        FastPush(42, "t", any_, any_, (), True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fallback must be callable, got None"):
        FastPush(any_, "t", None, any_, (), True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry must be callable, got 1"):
        FastPush(any_, "t", any_, 1, (), True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry_on must hold exception types, got 'x'"):
        FastPush(any_, "t", any_, any_, ("x",), True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FastPush(any_, b"t", any_, any_, (), True)  # type: ignore[arg-type]
    push = FastPush(any_, "t", any_, any_, (), True)
    with pytest.raises(TypeError, match="produce must be callable, got 'x'"):
        push.produce = "x"  # type: ignore[assignment]
    with pytest.raises(AttributeError, match="cannot be deleted"):
        del push.produce


@needs_fast_push
def test_it_reads_like_the_function_it_speeds_up() -> None:
    def push_with_key(key: str, value: str, headers: object = None) -> None:
        """Push value under key."""

    push = functools.update_wrapper(fast(Produce(), push_with_key), push_with_key)
    assert push.__doc__ == "Push value under key."
    assert push.__name__ == "push_with_key"
    assert (
        str(inspect.signature(push))
        == "(key: 'str', value: 'str', headers: 'object' = None) -> 'None'"
    )
    assert push.fallback is push_with_key  # type: ignore[attr-defined]
    assert push.keyed is True  # type: ignore[attr-defined]


class Owner:
    """Holds a push whose fallback holds the owner, as a Pusher does."""

    push: Callable[..., object]


def owner_in_a_cycle(through: str) -> weakref.ref[Owner]:
    owner = Owner()

    def fallback(*args: object) -> None:
        # never called: it holds the owner, as the Pusher's full push holds the pusher
        assert owner is not None

    if through == "fallback":
        owner.push = fast(Produce(), fallback)
    elif through == "retry":
        owner.push = fast(Produce(), Recorder(), fallback)
    else:  # the instance __dict__, where update_wrapper puts __wrapped__
        owner.push = functools.update_wrapper(fast(Produce(), Recorder()), fallback)
    return weakref.ref(owner)


@needs_fast_push
@pytest.mark.parametrize("through", ["fallback", "retry", "__dict__"])
def test_a_cycle_through_the_type_is_collected(through: str) -> None:
    # given a FastPush holding an object that holds the FastPush, as a Pusher's
    # pushes do, no longer referenced from outside
    gone = owner_in_a_cycle(through)
    # when the garbage collector runs
    gc.collect()
    # then it freed the cycle
    assert gone() is None


@needs_fast_push
def test_no_reference_is_leaked_on_any_path() -> None:
    # given arguments and results whose reference counts can be watched
    key, value, result = object(), object(), object()

    def produce(*args: object) -> object:
        if args[1] is value:
            return result
        raise BufferError("full")

    assert FastPush is not None
    fallback, retry = Recorder(), Recorder()
    push_with_key = fast(produce, fallback, retry)
    watched = (key, value, result, produce, fallback, retry)
    before = [sys.getrefcount(item) for item in watched]
    # when every path runs many times: produced, retried, deferred, refused
    for _ in range(10_000):
        push_with_key(key, value)
        push_with_key(key, "retried")
        push_with_key(key, value, None)
        with pytest.raises(TypeError):
            FastPush(produce, "t", fallback, retry, ("x",), True)  # type: ignore[arg-type]
    fallback.calls.clear()
    retry.calls.clear()
    # then no count grew
    assert [sys.getrefcount(item) for item in watched] == before


@needs_fast_push
def test_it_can_be_weakly_referenced_and_names_what_it_speeds_up() -> None:
    def push_with_key(key: str, value: str) -> None:
        """Push value under key."""

    push = fast(Produce(), push_with_key)
    assert weakref.ref(push)() is push
    assert repr(push) == f"<FastPush of {push_with_key!r}>"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "pure"),
    [({}, False), ({"ZEROQUEUE_PURE_PYTHON": "1"}, True), ({"CC": "false"}, True)],
    ids=["compiled", "pure-on-purpose", "no-compiler"],
)
def test_the_wheel_carries_the_extension_when_it_compiles(
    tmp_path: Path, env: dict[str, str], pure: bool
) -> None:
    # given the project's sources, built the way pip builds a wheel
    build_env = {k: v for k, v in os.environ.items() if k not in ("ZEROQUEUE_PURE_PYTHON", "CC")}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        env=build_env | env,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("zeroqueue-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    extensions = sorted(name for name in names if name.startswith("zeroqueue/kq/_fastpush."))
    # then a pure wheel has only the stub, a platform wheel the compiled module too
    if pure:
        assert wheel.name.endswith("-py3-none-any.whl")
        assert extensions == ["zeroqueue/kq/_fastpush.pyi"]
    else:
        assert not wheel.name.endswith("-none-any.whl")
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        assert extensions == [f"zeroqueue/kq/_fastpush{suffix}", "zeroqueue/kq/_fastpush.pyi"]
    assert "zeroqueue/kq/_fastpush.c" not in names
