"""Open docs/post.md in a headless browser, take a full-page screenshot and record what loaded.

    PYTHONPATH=/tmp/pw python docs/screenshot_post.py --chromium /usr/bin/chromium-headless-shell \
        --screenshot /tmp/post.png

Needs `markdown` and `playwright` (not project requirements: install them into a folder of
their own, e.g. `pip install --target /tmp/pw markdown playwright`) and a Chromium binary.
Converts the post to HTML beside it (a temporary file in docs/, removed afterwards, so the
relative figure links resolve), and writes bench/results/post_screenshot_check.json: date,
browser version, page height, figures linked and loaded, and the screenshot's size (the PNG
itself is not committed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
POST = ROOT / "docs" / "post.md"
CHECK = ROOT / "bench" / "results" / "post_screenshot_check.json"
STYLE = "body{max-width:52em;margin:2em auto;font-family:sans-serif;line-height:1.5}img{max-width:100%}"
STYLE += "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"


def main(argv=None) -> None:
    import markdown
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", required=True, help="path of a Chromium or headless-shell binary")
    parser.add_argument("--screenshot", type=pathlib.Path, required=True, help="where to write the PNG")
    args = parser.parse_args(argv)
    body = markdown.markdown(POST.read_text(), extensions=["tables", "fenced_code"])
    head = f"<head><meta charset='utf-8'><style>{STYLE}</style></head>"
    html = f"<!doctype html><html>{head}<body>{body}</body></html>"
    with tempfile.NamedTemporaryFile("w", suffix=".html", dir=POST.parent, delete=True) as page_file:
        page_file.write(html)
        page_file.flush()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(pathlib.Path(page_file.name).as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img",
                "els => els.map(e => ({src: e.getAttribute('src'),"
                " loaded: e.complete && e.naturalWidth > 0}))",
            )
            height = page.evaluate("document.documentElement.scrollHeight")
            page.screenshot(path=str(args.screenshot), full_page=True)
            version = browser.version
            browser.close()
    record = {
        "what": "docs/post.md converted to HTML (python-markdown, tables and fenced code) and opened in "
        "headless Chromium",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "browser": f"Chromium {version}",
        "viewport_width": 1100,
        "page_height_px": height,
        "figures_linked": len(images),
        "figures_loaded": sum(image["loaded"] for image in images),
        "figures_not_loaded": [image["src"] for image in images if not image["loaded"]],
        "screenshot_bytes": args.screenshot.stat().st_size,  # kept out of the repository: too large
    }
    CHECK.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
