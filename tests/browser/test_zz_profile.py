"""Temporary diagnostic (not committed): where Chromium's CPU goes while notebook 04 plays."""
import collections, json, time
from lab_page import button, status_text, wait_until
from test_lab import open_notebook, wait_idle, WORKSHOP


def test_profile(page, lab_server, output_dir):
    open_notebook(page, lab_server, WORKSHOP)
    wait_idle(page, lab_server)
    wait_until(lambda: "paused" in status_text(page), 30, "paused")
    cdp = page.context.new_cdp_session(page)
    import os
    if os.environ.get("TALL"):
        page.set_viewport_size({"width": 1400, "height": 2000})
        dashboard = page.locator(".widget-vbox", has=button(page, "Forward")).first
        dashboard.scroll_into_view_if_needed()
        page.evaluate("() => document.querySelector('.trainlab-dashboard').scrollIntoView()")
    cdp.send("Performance.enable")
    button(page, "Play").click()
    time.sleep(2)
    m0 = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    browser = page.context.browser
    browser.start_tracing(page=page, categories=["devtools.timeline", "disabled-by-default-devtools.timeline"])
    time.sleep(4)
    trace = json.loads(browser.stop_tracing())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    agg = collections.Counter(); cnt = collections.Counter()
    threads = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            key = (threads.get((e["pid"], e["tid"]), "?"), e["name"])
            agg[key] += e["dur"] / 1e6 / 4; cnt[key] += 1
    (output_dir / "trace.txt").write_text("\n".join(f"{v:.3f} s/s {cnt[k]/4:.0f}/s {k}" for k, v in agg.most_common(40)))
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    time.sleep(6)
    profile = cdp.send("Profiler.stop")["profile"]
    m1 = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    page.screenshot(path=str(output_dir / "profile.png"))
    button(page, "Pause").click()
    nodes = {n["id"]: n for n in profile["nodes"]}
    counts = collections.Counter(profile["samples"])
    total = sum(counts.values())
    by_fn = collections.Counter()
    by_url = collections.Counter()
    for nid, c in counts.items():
        f = nodes[nid]["callFrame"]
        by_fn[(f["functionName"], f["url"].split("/")[-1][:40], f["lineNumber"])] += c
        by_url[f["url"].split("/")[-1][:50]] += c
    dt = (profile["endTime"] - profile["startTime"]) / 1e6
    out = [f"window {dt:.1f}s samples {total}"]
    for k in ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "LayoutCount", "RecalcStyleCount", "Nodes", "JSHeapUsedSize"):
        out.append(f"METRIC {k} {(m1.get(k, 0) - m0.get(k, 0)) / (dt if 'Duration' in k or 'Count' in k else 1):.3f}/s")
    for k, c in by_url.most_common(15): out.append(f"URL {c/total:6.1%} {k}")
    for k, c in by_fn.most_common(40): out.append(f"FN {c/total:6.1%} {k}")
    (output_dir / "profile.txt").write_text("\n".join(out))
