"""The CPU benchmark's figure (bench/conv3d_cpu.py): GFLOP/s per shape and
framework on a log scale, and below it volconv's speed-up over each other
framework on a linear scale, where a 10% difference is visible. Skipped runs
are marked where their bar would be; the legend sits outside the axes."""

from __future__ import annotations

FRAMEWORKS = ["volconv", "torch_cl", "torch", "mlx"]
OTHERS = ["torch_cl", "torch", "mlx"]
RATIO_CLIP = 3.0  # the linear panel's top; larger speed-ups are written on their bar


def _short(dtype: str) -> str:
    return dtype.replace("bfloat", "bf").replace("float", "f")


def plot(rows: list[dict], path: str, title: str):
    """Draws `rows` (dicts with shape, dtype, fw, ms, flops, skipped) and saves
    the figure to `path`; returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(
        {(r["shape"], r["dtype"]) for r in rows}, key=lambda sd: (sd[1] != "float32", sd[1], sd[0])
    )
    by = {(r["shape"], r["dtype"], r["fw"]): r for r in rows}
    fig, (ax, ax_ratio) = plt.subplots(
        2,
        1,
        figsize=(max(8.0, len(labels) * 0.9), 8.0),
        sharex=True,
        height_ratios=[3, 2],
        layout="constrained",
    )
    width = 0.2
    xs = range(len(labels))

    gflops = [r["flops"] / r["ms"] / 1e6 for r in rows if not r["skipped"] and r["ms"] > 0]
    floor = min(gflops, default=1.0) / 3
    for i, fw in enumerate(FRAMEWORKS):
        pos, vals, skipped = [], [], []
        for j, (s, d) in enumerate(labels):
            r = by.get((s, d, fw))
            x = j + (i - 1.5) * width
            if r is None:
                continue
            if r["skipped"]:
                skipped.append(x)
            else:
                pos.append(x)
                vals.append(r["flops"] / r["ms"] / 1e6)
        color = f"C{i}"
        ax.bar(pos, vals, width, label=fw, color=color)
        for x in skipped:
            ax.text(
                x, floor * 1.15, "skipped", rotation=90, ha="center", va="bottom", fontsize=7, color=color
            )
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_ylabel("GFLOP/s (log scale)")
    ax.set_title(title, fontsize=9)
    fig.legend(loc="outside upper center", ncols=len(FRAMEWORKS))

    for i, fw in enumerate(OTHERS, start=1):
        for j, (s, d) in enumerate(labels):
            mine, other = by.get((s, d, "volconv")), by.get((s, d, fw))
            x = j + (i - 2) * width
            if mine is None or other is None:
                continue
            if mine["skipped"] or other["skipped"]:
                ax_ratio.text(
                    x, 0.05, "skipped", rotation=90, ha="center", va="bottom", fontsize=7, color=f"C{i}"
                )
                continue
            ratio = other["ms"] / mine["ms"]
            ax_ratio.bar(x, min(ratio, RATIO_CLIP), width, color=f"C{i}")
            if ratio > RATIO_CLIP:
                ax_ratio.text(
                    x, RATIO_CLIP * 0.98, f"{ratio:.0f}x", rotation=90, ha="center", va="top", fontsize=7
                )
    ax_ratio.axhspan(0.9, 1.1, color="0.85", zorder=0)
    ax_ratio.axhline(1.0, color="k", linewidth=0.8)
    ax_ratio.set_ylim(0, RATIO_CLIP)
    ax_ratio.set_ylabel("volconv speed-up (linear)\n= other's time / volconv's")
    ax_ratio.set_xticks(list(xs))
    ax_ratio.set_xticklabels([f"{s}\n{_short(d)}" for s, d in labels])
    ax_ratio.set_xlabel("shape, dtype (grey band: within 10%)")
    fig.savefig(path, dpi=120)
    return fig
