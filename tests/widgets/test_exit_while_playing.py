"""A kernel (or script) that exits while a dashboard plays exits cleanly."""

import subprocess
import sys
import textwrap


def test_exiting_while_a_dashboard_plays_stops_its_thread_first():
    script = textwrap.dedent("""
        import time
        import trainlab as tl
        X, y = tl.datasets.moons(n=200, seed=0)
        loop = tl.Loop(tl.models.mlp(2, [16], 2, seed=0), (X, y), "cross_entropy", lr=0.1)
        dash = tl.Dashboard(loop, plots=("loss",))
        dash.play()
        dash.wait(steps=100, timeout=20)
        print("playing", dash.playing)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "playing True" in done.stdout
    assert "terminate called" not in done.stderr
