"""SEG-Y files the tests make from others."""

import segyio


def without_traces(src, dest, drop):
    """``src`` rewritten to ``dest`` without the traces for which ``drop(inline, crossline)`` is true: an irregular
    outline exported without its missing traces, a notch in a line. Returns ``dest``."""
    with segyio.open(str(src), ignore_geometry=True) as f:
        il = f.attributes(segyio.TraceField.INLINE_3D)[:]
        xl = f.attributes(segyio.TraceField.CROSSLINE_3D)[:]
        keep = [i for i in range(f.tracecount) if not drop(il[i], xl[i])]
        spec = segyio.tools.metadata(f)
        spec.tracecount = len(keep)
        with segyio.create(str(dest), spec) as g:
            g.text[0], g.bin = f.text[0], f.bin
            for j, i in enumerate(keep):
                g.header[j], g.trace[j] = f.header[i], f.trace[i]
    return dest
