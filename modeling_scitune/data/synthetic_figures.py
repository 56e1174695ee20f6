"""Deterministic synthetic scientific figures in the five SciCap types, drawn with matplotlib.

Each `draw_*` function takes a seeded RNG and returns the rendered PNG bytes plus the facts of what it drew
(axis labels, series, trend, largest bar, node and edge counts, equation name...). The captions and questions are
written from these facts, so they describe what is actually in the image. Styles, fonts, sizes, colours, series
counts and data all vary, so a model has to *look* at the figure to know its type or content.
"""

from __future__ import annotations

import io
import math
import random

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib import style as mpl_style  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

STYLES = ("default", "ggplot", "bmh", "seaborn-v0_8-whitegrid", "classic", "seaborn-v0_8-ticks", "fast")
FONTS = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono")
QUANTITIES = (
    ("Accuracy", "%"), ("Loss", ""), ("Temperature", "K"), ("Time", "s"), ("Pressure", "kPa"), ("Voltage", "V"),
    ("Frequency", "Hz"), ("Energy", "eV"), ("Depth", "m"), ("Concentration", "mM"), ("Yield", "%"), ("Speed", "m/s"),
    ("Density", "g/cm3"), ("Current", "mA"), ("Throughput", "GB/s"), ("Error", "%"),
)
X_QUANTITIES = (("Epoch", ""), ("Time", "h"), ("Iteration", ""), ("Distance", "km"), ("Load", "N"), ("Step", ""),
                ("Temperature", "C"), ("Dose", "mg"), ("Batch size", ""), ("Wavelength", "nm"))
SERIES = ("Baseline", "Ours", "Control", "Treated", "Model A", "Model B", "Silicon", "Copper", "Sample 1",
          "Sample 2", "Linear", "Nonlinear", "Train", "Test", "Simulation", "Experiment")
CATEGORIES = (("CPU", "GPU", "TPU", "FPGA", "ASIC", "NPU", "DSP"), ("NaCl", "KCl", "LiCl", "MgO", "CaO", "ZnS", "FeO"),
              ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7"), ("BERT", "GPT", "T5", "LLaMA", "CLIP", "ViT", "ResNet"),
              ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), ("Alpha", "Beta", "Gamma", "Delta", "Sigma", "Omega", "Theta"))
NODE_NAMES = (("Input", "Encoder", "Decoder", "Output", "Loss", "Cache", "Router"),
              ("Data", "Model", "Train", "Eval", "Deploy", "Monitor", "Store"),
              ("A", "B", "C", "D", "E", "F", "G"), ("Sensor", "Filter", "Mixer", "Amp", "ADC", "CPU", "Radio"))
EQUATIONS = (
    ("Gaussian density", r"$p(x)=\frac{1}{\sqrt{2\pi\sigma^2}}\exp\left(-\frac{(x-\mu)^2}{2\sigma^2}\right)$", "p(x) = exp"),
    ("Bayes rule", r"$P(A|B)=\frac{P(B|A)\,P(A)}{P(B)}$", "P(A|B) = P(B|A) P(A) P(B)"),
    ("cross-entropy loss", r"$\mathcal{L}=-\sum_{i=1}^{N} y_i \log \hat{y}_i$", "L = log"),
    ("softmax function", r"$\sigma(z)_j=\frac{e^{z_j}}{\sum_k e^{z_k}}$", "o(z) ="),
    ("ideal gas law", r"$PV=nRT$", "PV = nRT"),
    ("mass-energy equivalence", r"$E=mc^2$", "E = mc"),
    ("scaled dot-product attention", r"$\mathrm{Attn}(Q,K,V)=\mathrm{softmax}(QK^T/\sqrt{d})\,V$", "Attn(Q,K,V) = softmax"),
    ("heat equation", r"$\frac{\partial u}{\partial t}=\alpha\nabla^2 u$", "u = a"),
    ("Newton's second law", r"$F=ma$", "F = ma"),
    ("Ohm's law", r"$V=IR$", "V = IR"),
    ("logistic function", r"$f(x)=\frac{1}{1+e^{-k(x-x_0)}}$", "f(x) ="),
    ("Fourier transform", r"$\hat{f}(\xi)=\int f(x)\,e^{-2\pi i x\xi}\,dx$", "f(x) dx"),
    ("harmonic oscillator", r"$\ddot{x}+\omega^2 x=0$", "x + w x = 0"),
    ("Arrhenius equation", r"$k=A\,e^{-E_a/RT}$", "k = A e"),
)
TRENDS = ("increases", "decreases", "peaks", "oscillates", "saturates")


def _axis_label(quantity: tuple[str, str]) -> str:
    name, unit = quantity
    return f"{name} ({unit})" if unit else name


def _new_figure(rng: random.Random, wide: bool = False) -> Figure:
    width = rng.uniform(3.4, 4.6) if wide else rng.uniform(3.0, 4.2)
    height = rng.uniform(2.5, 3.4)
    return Figure(figsize=(width, height), dpi=rng.choice((80, 90, 100)))


def _to_png(figure: Figure) -> bytes:
    """Render to an RGB PNG (no alpha channel: CLIP preprocessing and OCR both want plain RGB)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def _curve(trend: str, x: np.ndarray, rng: random.Random) -> np.ndarray:
    t = (x - x.min()) / (x.max() - x.min())
    scale, offset = rng.uniform(5, 50), rng.uniform(0, 40)
    shapes = {
        "increases": t,
        "decreases": 1 - t,
        "peaks": np.exp(-((t - rng.uniform(0.35, 0.65)) ** 2) / 0.03),
        "oscillates": 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(1.5, 3.0) * t),
        "saturates": 1 - np.exp(-t * rng.uniform(4, 8)),
    }
    noise = np.array([rng.gauss(0, 0.02) for _ in x])
    return offset + scale * (shapes[trend] + noise)


def draw_graph_plot(rng: random.Random) -> tuple[bytes, dict]:
    n_series = rng.randint(1, 4)
    x_q, y_q = rng.choice(X_QUANTITIES), rng.choice(QUANTITIES)
    names = rng.sample(SERIES, n_series)
    trends = [rng.choice(TRENDS) for _ in names]
    figure = _new_figure(rng)
    ax = figure.add_subplot()
    x = np.linspace(0, rng.choice((10, 50, 100, 200)), 40)
    markers = rng.random() < 0.4
    for name, trend in zip(names, trends):
        ax.plot(x, _curve(trend, x, rng), label=name, marker="o" if markers else None, markersize=3,
                linestyle=rng.choice(("-", "--", "-")), linewidth=rng.uniform(1.2, 2.2))
    ax.set_xlabel(_axis_label(x_q))
    ax.set_ylabel(_axis_label(y_q))
    if n_series > 1 or rng.random() < 0.5:
        ax.legend(loc="best", fontsize="small")
    figure.tight_layout()
    facts = {"x_label": _axis_label(x_q), "y_label": _axis_label(y_q), "series": names, "trends": trends,
             "series_count": n_series, "text": [_axis_label(x_q), _axis_label(y_q), *names]}
    return _to_png(figure), facts


def draw_scatterplot(rng: random.Random) -> tuple[bytes, dict]:
    n_groups = rng.randint(1, 3)
    x_q, y_q = rng.choice(X_QUANTITIES), rng.choice(QUANTITIES)
    correlation = rng.choice(("positive", "negative", "no"))
    names = rng.sample(SERIES, n_groups)
    figure = _new_figure(rng)
    ax = figure.add_subplot()
    nprng = np.random.default_rng(rng.randint(0, 2**31))
    slope = {"positive": 1.0, "negative": -1.0, "no": 0.0}[correlation]
    for name in names:
        n = rng.randint(15, 60)
        xs = nprng.uniform(0, 10, n)
        ys = slope * xs + nprng.normal(0, rng.uniform(0.8, 2.0), n) + rng.uniform(0, 10)
        ax.scatter(xs, ys, s=rng.uniform(8, 30), label=name, marker=rng.choice(("o", "s", "^", "x")), alpha=0.8)
    ax.set_xlabel(_axis_label(x_q))
    ax.set_ylabel(_axis_label(y_q))
    if n_groups > 1:
        ax.legend(loc="best", fontsize="small")
    figure.tight_layout()
    facts = {"x_label": _axis_label(x_q), "y_label": _axis_label(y_q), "series": names, "series_count": n_groups,
             "correlation": correlation, "text": [_axis_label(x_q), _axis_label(y_q), *(names if n_groups > 1 else [])]}
    return _to_png(figure), facts


def draw_bar_chart(rng: random.Random) -> tuple[bytes, dict]:
    n_bars = rng.randint(3, 6)
    categories = rng.sample(rng.choice(CATEGORIES), n_bars)
    y_q = rng.choice(QUANTITIES)
    values = [round(rng.uniform(5, 100), 1) for _ in categories]
    horizontal = rng.random() < 0.3
    figure = _new_figure(rng, wide=True)
    ax = figure.add_subplot()
    colors = None if rng.random() < 0.5 else [f"C{i}" for i in range(n_bars)]
    if horizontal:
        ax.barh(categories, values, color=colors)
        ax.set_xlabel(_axis_label(y_q))
    else:
        ax.bar(categories, values, color=colors, width=rng.uniform(0.5, 0.85))
        ax.set_ylabel(_axis_label(y_q))
    figure.tight_layout()
    largest = categories[int(np.argmax(values))]
    smallest = categories[int(np.argmin(values))]
    facts = {"y_label": _axis_label(y_q), "categories": categories, "values": values, "largest": largest,
             "smallest": smallest, "series_count": 1, "orientation": "horizontal" if horizontal else "vertical",
             "text": [_axis_label(y_q), *categories]}
    return _to_png(figure), facts


def draw_node_diagram(rng: random.Random) -> tuple[bytes, dict]:
    n_nodes = rng.randint(3, 6)
    names = rng.sample(rng.choice(NODE_NAMES), n_nodes)
    layout = rng.choice(("chain", "circle", "tree"))
    if layout == "chain":
        positions = [(0.12 + 0.76 * i / (n_nodes - 1), 0.5 + rng.uniform(-0.2, 0.2)) for i in range(n_nodes)]
        edges = [(i, i + 1) for i in range(n_nodes - 1)]
    elif layout == "circle":
        positions = [(0.5 + 0.36 * math.cos(2 * math.pi * i / n_nodes), 0.5 + 0.36 * math.sin(2 * math.pi * i / n_nodes))
                     for i in range(n_nodes)]
        edges = [(i, (i + 1) % n_nodes) for i in range(n_nodes)]
    else:
        positions = [(0.5, 0.85)] + [(0.1 + 0.8 * i / max(n_nodes - 2, 1), 0.2) for i in range(n_nodes - 1)]
        edges = [(0, i) for i in range(1, n_nodes)]
    figure = _new_figure(rng, wide=True)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    box = rng.choice(("round", "circle", "square"))
    color = rng.choice(("#cfe2f3", "#fde9d9", "#e2efda", "#eeeeee", "#fff2cc"))
    for a, b in edges:
        ax.annotate("", xy=positions[b], xytext=positions[a],
                    arrowprops={"arrowstyle": "->", "lw": 1.4, "color": "black", "shrinkA": 18, "shrinkB": 18})
    for (px, py), name in zip(positions, names):
        ax.text(px, py, name, ha="center", va="center", fontsize=rng.choice((10, 11, 12)),
                bbox={"boxstyle": f"{box},pad=0.4", "fc": color, "ec": "black"})
    facts = {"nodes": names, "node_count": n_nodes, "edge_count": len(edges), "layout": layout,
             "first": names[0], "last": names[-1] if layout != "tree" else names[0], "series_count": 0, "text": names}
    return _to_png(figure), facts


def draw_equation(rng: random.Random) -> tuple[bytes, dict]:
    n_lines = rng.randint(1, 3)
    chosen = rng.sample(EQUATIONS, n_lines)
    figure = Figure(figsize=(rng.uniform(3.6, 5.0), 0.9 + 0.7 * n_lines), dpi=rng.choice((80, 90, 100)))
    numbered = rng.random() < 0.6
    start = rng.randint(1, 9)
    for i, (_, tex, _) in enumerate(chosen):
        y = 1 - (i + 0.5) / n_lines
        figure.text(rng.uniform(0.04, 0.2), y, tex, fontsize=rng.choice((13, 14, 15, 16)), va="center")
        if numbered:
            figure.text(0.9, y, f"({start + i})", fontsize=12, va="center")
    facts = {"equations": [name for name, _, _ in chosen], "equation_count": n_lines, "numbered": numbered,
             "series_count": 0, "text": [plain for _, _, plain in chosen] + ([f"({start})"] if numbered else [])}
    return _to_png(figure), facts


DRAWERS = {
    "Graph Plot": draw_graph_plot,
    "Scatterplot": draw_scatterplot,
    "Bar Chart": draw_bar_chart,
    "Node Diagram": draw_node_diagram,
    "Equation": draw_equation,
}


def draw_figure(figure_type: str, rng: random.Random) -> tuple[bytes, dict]:
    """Render one figure of `figure_type` in a randomly drawn style and font; returns (PNG bytes, facts)."""
    style = rng.choice(STYLES)
    rc = {"font.family": rng.choice(FONTS), "font.size": rng.choice((10, 11, 12)), "axes.grid": rng.random() < 0.4}
    with mpl_style.context(style), matplotlib.rc_context(rc):
        png, facts = DRAWERS[figure_type](rng)
    facts["style"] = style
    facts["font"] = rc["font.family"]
    return png, facts
