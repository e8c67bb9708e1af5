"""bench/conv3d_cpu.py's command line and figure, without timing anything:
--shapes selects exactly the runs; the figure keeps its legend off the bars,
marks skipped runs, names the machine, threads and versions, has a linear
ratio panel, and goes where --plot says (by default beside the script, a
git-ignored path)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
if not (BENCH / "conv3d_cpu.py").is_file():  # wheel tests copy tests/ without bench/
    pytest.skip("needs the source tree's bench/", allow_module_level=True)


def dry_run(*args: str) -> list[tuple[str, str]]:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "conv3d_cpu.py"), *args, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [tuple(line.split()) for line in proc.stdout.splitlines()]


def test_shapes_a_f_runs_only_a_and_f():
    # a is one of the low-precision shapes (a, c, e); c and e were not asked for.
    assert dry_run("--shapes", "a,f") == [
        ("a", "float32"),
        ("f", "float32"),
        ("a", "bfloat16"),
        ("a", "float16"),
    ]
    assert dry_run("--shapes", "f") == [("f", "float32")]
    assert dry_run("--shapes", "a,c", "--low-precision", "") == [("a", "float32"), ("c", "float32")]


def test_unknown_shape_is_refused_naming_the_valid_ones():
    proc = subprocess.run(
        [sys.executable, str(BENCH / "conv3d_cpu.py"), "--shapes", "a,z", "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert (
        proc.returncode == 2
        and "unknown shape(s) z; the shapes are a,b,c,d,e,f,g,h,i,j,k,l,m,n" in proc.stderr
    )


def test_default_plot_is_beside_the_script_and_git_ignored():
    sys.path.insert(0, str(BENCH))
    import conv3d_cpu

    assert conv3d_cpu.DEFAULT_PLOT == BENCH / "conv3d_cpu.png"
    root = BENCH.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(["git", "check-ignore", "-q", str(conv3d_cpu.DEFAULT_PLOT)], cwd=root)
    assert proc.returncode == 0, "bench/conv3d_cpu.png is not git-ignored"


def synthetic_rows() -> list[dict]:
    """Tall bars everywhere (so no corner of the axes is free for a legend),
    one skipped volconv-vs-MLX pair, one ratio far off the linear panel."""
    rows = []
    ms = {"volconv": 1.0, "torch_cl": 1.05, "torch": 1.6, "mlx": 90.0}
    for shape in "abcdefghi":
        for fw, t in ms.items():
            skipped = "MLX: no groups" if (shape == "f" and fw == "mlx") else None
            rows.append(dict(shape=shape, dtype="float32", fw=fw, ms=t, flops=1e9, mem=0.0, skipped=skipped))
    return rows


@pytest.fixture(scope="module")
def figure(tmp_path_factory):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(BENCH))
    from conv3d_cpu_plot import plot

    path = tmp_path_factory.mktemp("plot") / "sub" / "bench.png"
    path.parent.mkdir()
    fig = plot(
        synthetic_rows(),
        str(path),
        "conv3d on CPU: Test CPU 9000, 7 threads\nvolconv 1.2.3 (avx2), torch 9.9",
    )
    fig.canvas.draw()
    return fig, path


def test_plot_goes_where_asked(figure):
    _, path = figure
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_legend_covers_no_bar(figure):
    fig, _ = figure
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    renderer = fig.canvas.get_renderer()
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            for bar in ax.patches:
                assert not box.overlaps(bar.get_window_extent(renderer)), "the legend hides a bar"


def test_skipped_runs_are_marked_in_both_panels(figure):
    fig, _ = figure
    for ax in fig.axes:
        assert [t.get_text() for t in ax.texts].count("skipped") == 1


def test_title_names_machine_threads_and_versions(figure):
    fig, _ = figure
    title = fig.axes[0].get_title()
    assert (
        "Test CPU 9000" in title
        and "7 threads" in title
        and "volconv 1.2.3" in title
        and "torch 9.9" in title
    )


def test_ratio_panel_is_linear_and_shows_ten_percent(figure):
    fig, _ = figure
    ratio = fig.axes[1]
    assert ratio.get_yscale() == "linear"
    heights = sorted(round(p.get_height(), 3) for p in ratio.patches if p.get_height() > 0)
    assert 1.05 in heights and 1.6 in heights  # torch_cl 5% slower, torch 60% slower: both readable
    assert "90x" in [t.get_text() for t in ratio.texts]  # MLX's ratio, off the panel, written on its bar


def test_scaling_bench_runs_the_bench_shapes_at_each_thread_count():
    # bench/conv3d_cpu_scaling.py takes the shape list of bench/conv3d_cpu.py.
    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(BENCH / "conv3d_cpu_scaling.py"), *args, "--dry-run"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    proc = run("--shapes", "a,n", "--threads", "1,16")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == ["a 1", "a 16", "n 1", "n 16"]
    proc = run("--shapes", "a,z")
    assert proc.returncode == 2 and "unknown shape(s) z; the shapes are a,b,c" in proc.stderr
    proc = run("--threads", "0")
    assert proc.returncode == 2 and "expected thread counts" in proc.stderr


def test_call_overhead_bench_prints_every_row_and_saves_its_plot(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    plot = tmp_path / "overhead.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "call_overhead_cpu.py"),
            "--rounds",
            "1",
            "--calls",
            "2",
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("volconv ", "torch "))]
    assert len(rows) == 7, proc.stdout
    assert all(float(r.split()[-1]) > 0 for r in rows), rows
    assert plot.stat().st_size > 0


def test_torch_host_time_bench_prints_every_row_and_saves_its_plot(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    plot = tmp_path / "host.png"
    cmd = [
        sys.executable,
        str(BENCH / "torch_host_time.py"),
        "--device",
        "cpu",
        "--rounds",
        "1",
        "--calls",
        "2",
    ]
    proc = subprocess.run([*cmd, "--plot", str(plot)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [
        line
        for line in proc.stdout.splitlines()
        if line.split() and line.split()[-1].replace(".", "").isdigit()
    ]
    assert len(rows) == 12, proc.stdout
    assert all(float(r.split()[-1]) > 0 for r in rows), rows
    assert plot.stat().st_size > 0
