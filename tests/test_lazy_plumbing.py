"""Plumbing that costs only when used: the timing path loads no NumPy or Numba, the GEMM's pool starts on demand."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    """``code`` in a fresh interpreter (imports already made by this test process do not count)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_timing_only_simulation_imports_no_numpy() -> None:
    """A timing-only run of every scheme (lowering and timing read the scheme, requant-mode, flavour and
    weight-format tables, numpy-free leaves) imports no NumPy, Numba, kernel or quant module; the tables
    read through `accelsim.quant` load nothing either, and its functions still resolve, loading the
    kernels on first use."""
    out = _run("""
        import sys
        def numeric():  # the arithmetic: NumPy, Numba, the kernels, the quant modules
            return sorted(
                m for m in sys.modules
                if m.split(".")[0] in ("numpy", "numba") or m.startswith(("accelsim.kernels", "accelsim.quant."))
            )
        from accelsim.config import load_hardware, load_workload
        from accelsim.simulation import RunOptions, simulate
        workload = load_workload("resnet50")
        for scheme, rounding in (("static", "fbgemm"), ("static", "tflite_float64"), ("dynamic", "tflite"), ("woq", "tflite")):
            hw = load_hardware(None, [f"requant.rounding={rounding}"])
            options = RunOptions(flavour="pytorch", weights="asymmetric", timing_only=True)
            assert simulate(workload, hw, scheme, options=options).total.total_cycles > 0
        print(numeric())
        import accelsim.quant as quant
        assert quant.REQUANT_MODES["fbgemm"].input_rule is quant.RULES["fbgemm"] and quant.DYNAMIC_FLAVOURS
        print(numeric())
        assert callable(quant.run_layer) and "numba" in sys.modules
    """)
    assert out.split() == ["[]", "[]"]


def test_gemm_pool_starts_on_first_split_gemm() -> None:
    """No GEMM thread exists after importing the kernels; a GEMM big enough to split starts the pool,
    and a one-thread budget never does."""
    out = _run("""
        import threading
        import numpy as np
        from accelsim.kernels import int_gemm, threads
        def gemm_threads():
            return sum(t.name.startswith("accelsim-gemm") for t in threading.enumerate())
        a = np.ones((512, 512), np.int8)
        b = np.ones((512, 256), np.int8)  # 2**26 MACs: above PARALLEL_MIN_MACS
        assert a.shape[0] * a.shape[1] * b.shape[1] >= threads.PARALLEL_MIN_MACS
        print(gemm_threads())
        threads.set_threads(1)
        int_gemm(a, b)
        print(gemm_threads())
        threads.set_threads(2)
        threads.in_parallel(lambda lo, hi: None, 4, 2, macs=threads.PARALLEL_MIN_MACS)
        print(gemm_threads())
    """)
    assert out.split() == ["0", "0", "1"]


def test_in_parallel_keeps_chunk_order() -> None:
    """The chunks' results come back in order of their first index, whichever thread finished first."""
    from accelsim.kernels import threads

    before = threads.threads()
    threads.set_threads(3)
    try:
        assert threads.in_parallel(lambda base, lo, hi: (base, lo, hi), 10, 3, "x", macs=threads.PARALLEL_MIN_MACS) == [
            ("x", 0, 4),
            ("x", 4, 8),
            ("x", 8, 10),
        ]
        assert threads.for_gemm(threads.PARALLEL_MIN_MACS - 1) == 1 and threads.for_gemm(threads.PARALLEL_MIN_MACS) == 3
    finally:
        threads.set_threads(before)


def test_side_work_runs_on_the_calling_thread_while_the_gemm_runs_whole_on_the_pool() -> None:
    """Inside ``beside``, a GEMM is not split: a large one runs whole on a pool thread while the caller
    does slices of the side work, until the work says it is done; from then on GEMMs split again. A
    large memory-bound kernel (``aside``) goes to the pool too. A small GEMM or kernel runs on the caller (a hand-off would cost more), and a one-thread budget has no pool to
    hand a GEMM to: no side work then."""
    import threading

    from accelsim.kernels import threads

    before = threads.threads()
    here = threading.current_thread().name
    slices: list[str] = []
    gemm_on: list[str] = []
    released = threading.Event()

    def gemm(lo: int, hi: int) -> tuple[int, int]:
        gemm_on.append(threading.current_thread().name)
        released.wait(5)  # runs until the side work has had its slices
        return lo, hi

    def work() -> bool:
        slices.append(threading.current_thread().name)
        if len(slices) == 3:
            released.set()
        return len(slices) < 3

    large, small = threads.BESIDE_MIN_MACS, threads.BESIDE_MIN_MACS - 1
    threads.set_threads(2)
    try:
        with threads.beside(work):
            assert threads.for_gemm(threads.PARALLEL_MIN_MACS) == 1
            assert threads.call(lambda: threading.current_thread().name, macs=small) == here
            assert slices == []
            assert threads.in_parallel(gemm, 10, 1, macs=large) == [(0, 10)]
            assert gemm_on[0].startswith("accelsim-gemm")
            assert slices == [here] * 3
            assert threads.for_gemm(threads.PARALLEL_MIN_MACS) == 2  # the work is done: split again
        with threads.beside(lambda: True):  # a memory-bound kernel (residual add, patch gather): the same by size
            name = lambda: threading.current_thread().name
            assert threads.aside(name, elements=threads.BESIDE_MIN_ELEMENTS - 1) == here
            assert threads.aside(name, elements=threads.BESIDE_MIN_ELEMENTS).startswith("accelsim-gemm")
        threads.set_threads(1)
        with threads.beside(work):
            assert threads.in_parallel(lambda lo, hi: threading.current_thread().name, 4, 1, macs=large) == [here]
        assert len(slices) == 3
    finally:
        threads.set_threads(before)


def test_cli_import_loads_no_heavy_modules() -> None:
    """`accelsim --help` builds the parser from light modules only: importing the CLI (and `accelsim.config`,
    whose names resolve on first use) loads no pydantic, Numba, Matplotlib, SimPy or NumPy; the names still work."""
    out = _run("""
        import sys
        import accelsim.cli
        heavy = ("pydantic", "numba", "matplotlib", "simpy", "numpy")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
        from accelsim.config import HardwareConfig, Workload, load_workload
        import accelsim.config as config
        assert config.__all__ and all(getattr(config, name) is not None for name in config.__all__)
        assert load_workload("resnet18").name and "pydantic" in sys.modules
    """)
    assert out.strip() == "[]"


#: the models a ResNet-50 workload validates: the workload and its six layer types
RESNET50_MODELS = ["Add", "AvgPool", "Conv2d", "Flatten", "Linear", "MaxPool", "Workload"]


def test_validate_and_timing_only_run_import_only_what_they_use(tmp_path) -> None:
    """`validate` of a workload builds the workload model only (no hardware or sweep models, no NumPy or
    SimPy, no hashes); a timing-only run into a fresh folder builds no sweep models and no validators for saved
    results (it reads none), and both parse YAML through libyaml. Neither loads asyncio (pydantic reached it
    through typing_extensions < 4.16), tqdm (a timing-only run has one step: no progress line to show) or
    concurrent.futures (the engine runs beside the values only). Only the models validated build a validator:
    the workload's and those of the layer types ResNet-50 uses (six of 23: the workload's validator holds no
    layer schema), and validate builds no hardware model (the run builds HardwareConfig, and Accumulator, whose
    default instance is made with its class)."""
    out = _run(f"""
        import contextlib, io, sys
        from accelsim import cli
        from accelsim.config import yaml_source
        calls = []
        original = yaml_source._LibyamlStrictLoader.__init__
        def counted(self, stream):
            calls.append(1)
            original(self, stream)
        yaml_source._LibyamlStrictLoader.__init__ = counted
        def built():  # the config models whose validators exist
            from accelsim.config.validation import StrictModel
            classes, todo = set(), [StrictModel]
            while todo:
                cls = todo.pop()
                todo.extend(cls.__subclasses__())
                if cls.__pydantic_complete__:
                    classes.add(cls.__name__)
            return sorted(classes)
        watched = (
            "accelsim.config.hardware", "accelsim.config.sweep", "accelsim.config.constraint", "numpy", "simpy",
            "hashlib", "asyncio", "tqdm", "concurrent.futures",
        )
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["validate", "resnet50"]) == 0
        print(sorted(m for m in watched if m in sys.modules), len(calls), built())
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["run", "resnet50", "--timing-only", "--out", {str(tmp_path)!r}]) == 0
        from accelsim.results import records
        print(sorted(m for m in watched if m in sys.modules), len(calls), records._validators.cache_info().currsize)
        print(built())
    """)
    assert out.splitlines() == [
        f"[] 1 {RESNET50_MODELS}",
        "['accelsim.config.hardware', 'hashlib', 'simpy'] 3 0",
        str(sorted(["Accumulator", "HardwareConfig", *RESNET50_MODELS])),
    ]


def test_cli_turns_off_pydantic_plugins_unless_the_user_chose() -> None:
    """The command keeps pydantic from searching installed packages for plugins (accelsim uses none), and
    leaves a value the user set, even an empty one, as it is."""
    out = _run("""
        import contextlib, io, os
        from accelsim import cli
        for preset in (None, "", "logfire"):
            os.environ.pop(cli.PYDANTIC_PLUGINS_VARIABLE, None)
            if preset is not None:
                os.environ[cli.PYDANTIC_PLUGINS_VARIABLE] = preset
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli.main(["validate", "tiny_cnn"]) == 0
            print(repr(os.environ[cli.PYDANTIC_PLUGINS_VARIABLE]))
    """)
    assert out.split() == ["'__all__'", "''", "'logfire'"]


def test_the_command_leaves_its_heap_to_the_os_at_exit() -> None:
    """The process the command ran in freezes its objects at exit (the interpreter then searches none of them
    for garbage cycles; exit handlers still run); a call itself freezes nothing, however many are made."""
    out = _run("""
        import atexit, contextlib, gc, io
        from accelsim import cli
        atexit.register(lambda: print("at exit", gc.get_freeze_count() > 0))
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["validate", "tiny_cnn"]) == 0
            assert cli.main(["validate", "tiny_cnn"]) == 0
        print("after main", gc.get_freeze_count())
    """)
    assert out.splitlines() == ["after main 0", "at exit True"]


def test_timing_only_run_creates_no_class_it_does_not_use() -> None:
    """A dataclass costs the compilation of its methods when its module is imported: a timing-only `run` of a CNN
    creates neither the whole-GEMM ArrayTiming (the lowering prices tiles with SystolicArray.tile_cycles), nor
    the plots' SeriesStyle (its layer table marks no baseline), nor a decoder's KvRead; each resolves where used."""
    out = _run("""
        import contextlib, gc, io, tempfile
        from accelsim import cli
        def classes():
            return sorted(c.__name__ for c in gc.get_objects() if isinstance(c, type) and c.__name__ in ("ArrayTiming", "KvRead", "SeriesStyle"))
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["run", "tiny_cnn", "--timing-only", "--out", out]) == 0
        print(classes())
        from accelsim.hw import ArrayTiming, SystolicArray
        from accelsim.report.summary import scheme_rows
        from accelsim.results.records import LayerRecord
        assert type(SystolicArray(4, 4, "ws").gemm(8, 8, 8)) is ArrayTiming
        from dataclasses import fields
        row = LayerRecord(**{f.name: {int: 1, float: 1.0, str: "fp32"}[f.type] for f in fields(LayerRecord)})
        assert scheme_rows([row])
        from accelsim.config import load_hardware, load_workload
        from accelsim.lowering.program import lower
        program = lower(load_workload("tinyllama_1b_decode"), load_hardware(None), "static")
        assert any(layer.view is not None and layer.view.kv_read is not None for layer in program.layers)
        print(classes())
    """)
    assert out.splitlines() == ["[]", "['ArrayTiming', 'KvRead', 'SeriesStyle']"]
