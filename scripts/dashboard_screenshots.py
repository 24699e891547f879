"""Screenshots of every dashboard page from a real run, for docs/dashboard.md.

Starts a real server on loopback over a temporary home, signs in with a real key in Debian's chromium
(Playwright), enrols the public test photos of ``tests/photos.py`` (never ../shared photos), searches, compares,
starts a camera on a synthetic UDP stream and photographs each page at 1280 px wide. PNGs are reduced to a
256-colour palette to stay small. Run from the repository root::

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/dashboard]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facetrace.engine import FaceEngine
from facetrace.service import ServiceConfig
from tests.photos import photo
from tests.service.conftest import start_server
from tests.ui.conftest import ARGS, CHROMIUM
from tests.video.conftest import Actor, UdpSender, free_udp_port, sprite, write_video


def save(page: object, out: Path, name: str, colours: int = 48) -> None:
    png = page.screenshot(full_page=True)  # type: ignore[attr-defined]
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.height > 1400:
        image = image.crop((0, 0, image.width, 1400))
    image.quantize(colours, dither=Image.Dither.NONE).save(out / f"{name}.png", optimize=True)
    print(f"{name}.png {(out / f'{name}.png').stat().st_size // 1024} KB")


def review_scene(engine: FaceEngine, server: object, tmp: Path) -> None:
    """Review items and an unknown person made for real: the review tests' borderline clip (Obama at 40 px,
    plus a stranger) analysed against ``desk`` (obama3.jpg, biden.jpg), as a processor would hand it over."""
    from facetrace.review import ReviewQueue, UnknownPeople
    from facetrace.store import records_of
    from facetrace.video.identity import CollectionMatcher
    from tests.review.conftest import unresolved

    gallery = server.gallery  # type: ignore[attr-defined]
    gallery.create_collection("desk")
    gallery.index_faces("desk", photo("obama3.jpg"), external_image_id="obama", max_faces=1)
    gallery.index_faces("desk", photo("biden.jpg"), external_image_id="biden", max_faces=1)
    clip = write_video(
        tmp / "door.mp4",
        [Actor("obama", sprite(engine, photo("obama2.jpg"), 40), 0.0, 2.0, (100, 60), (300, 80)),
         Actor("", sprite(engine, photo("t1.jpg"), 60), 0.0, 2.0, (450, 220), (460, 220))],
        seconds=2.0,
    )  # fmt: skip
    records = records_of(gallery.store)
    assert records is not None
    queue, people = ReviewQueue(gallery, records.reviews), UnknownPeople(gallery, records.unknowns)
    for camera in ("front-door", "back-door"):
        for track in unresolved(engine, gallery, clip, camera, "desk"):
            queue.offer(track, CollectionMatcher(gallery, "desk", 90.0), source=camera, match_threshold=99.0)
            people.add(track, "desk", source=camera)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    engine = FaceEngine.create()
    with tempfile.TemporaryDirectory() as tmp:
        footage = Path(tmp) / "footage" / "lobby"
        footage.mkdir(parents=True)
        config = ServiceConfig(
            port=0, workers=2, camera_allow=("udp://127.0.0.1:*",), buckets={"footage": footage.parent}
        )
        server = start_server(Path(tmp), engine, config)
        gallery = server.gallery
        gallery.create_collection("staff")
        for name, person in (("obama.jpg", "obama"), ("obama2.jpg", "obama"), ("biden.jpg", "biden")):
            face = gallery.index_faces("staff", photo(name), external_image_id=person, max_faces=1).indexed[0]
            if person not in [u.user_id for u in gallery.list_users("staff").items]:
                gallery.create_user("staff", person)
            gallery.associate_faces("staff", person, [face.record.face_id])
        server.keys.create("read", collections=["staff"], description="front desk")
        port = free_udp_port()
        walker = [Actor("obama", sprite(engine, photo("obama.jpg"), 90), 0.0, 2.5, (120, 60), (420, 60))]
        write_video(
            footage / "scene.mp4",
            [
                Actor("obama", sprite(engine, photo("obama.jpg"), 80), 0.0, 1.5, (40, 20), (300, 30)),
                Actor("biden", sprite(engine, photo("biden.jpg"), 80), 2.0, 3.8, (500, 40), (360, 30)),
            ],
        )
        try:
            with sync_playwright() as playwright, UdpSender(port, walker, seconds=90.0, loop=5.0):
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                base = server.url
                page.goto(base + "/ui/")
                save(page, args.out, "signin")
                page.fill("input[name=access_key_id]", server.admin.access_key_id)
                page.fill("input[name=secret]", server.admin.secret)
                page.click("button:has-text('Sign in')")
                page.wait_for_url(base + "/ui/")
                page.goto(base + "/ui/cameras")
                page.fill("input[name=name]", "front-door")
                page.fill("input[name=source]", f"udp://127.0.0.1:{port}")
                page.click("button:has-text('Add camera')")
                page.click("button:has-text('Start')")
                page.goto(base + "/ui/cameras/front-door")
                page.locator("ul.now li.identified").first.wait_for(timeout=30_000)
                time.sleep(1.0)
                save(page, args.out, "camera-live", colours=16)  # the synthetic scene's noise compresses badly
                page.goto(base + "/ui/cameras")
                save(page, args.out, "cameras")
                page.goto(base + "/ui/events")
                page.locator("ul.events li").nth(1).wait_for(timeout=30_000)
                save(page, args.out, "events")
                page.goto(base + "/ui/sightings")
                save(page, args.out, "sightings")
                page.goto(base + "/ui/videos?bucket=footage&folder=lobby")
                save(page, args.out, "videos")
                page.locator("form:has(button:has-text('Search scene.mp4')) button").click()
                page.locator("[data-job-state=SUCCEEDED]").wait_for(timeout=60_000)
                page.locator("button.appearance").nth(1).click()
                time.sleep(0.5)
                save(page, args.out, "video-appearances", colours=16)
                page.goto(base + "/ui/")
                save(page, args.out, "overview")
                page.goto(base + "/ui/collections")
                save(page, args.out, "collections")
                page.goto(base + "/ui/collections/staff")
                blank = Path(tmp) / "no-face.png"
                Image.new("RGB", (320, 240), (200, 200, 200)).save(blank)
                page.set_input_files("input[name=photos]", [str(photo("obama3.jpg")), str(blank)])
                page.fill("input[name=person]", "obama")
                page.click("button:has-text('Enrol')")
                page.locator(".outcomes li").nth(2).wait_for()
                save(page, args.out, "collection-enrol")
                page.goto(base + "/ui/search")
                save(page, args.out, "purpose")
                page.fill("input[name=purpose]", "case-2026-114")
                page.click("button:has-text('Continue')")
                page.set_input_files("input[name=photo]", str(photo("obama_partial_face2.jpg")))
                page.fill("input[name=threshold]", "80")
                page.click("button:has-text('Search')")
                save(page, args.out, "search-match")
                page.set_input_files("input[name=photo]", str(photo("Tom_Hanks_54745.png")))
                page.click("button:has-text('Search')")
                save(page, args.out, "search-no-match")
                page.set_input_files("input[name=photo]", str(photo("t1.jpg")))
                page.click("button:has-text('Search')")
                save(page, args.out, "search-pick-face")
                page.goto(base + "/ui/compare")
                page.set_input_files("input[name=source]", str(photo("obama.jpg")))
                page.set_input_files("input[name=target]", str(photo("obama2.jpg")))
                page.click("button:has-text('Compare')")
                save(page, args.out, "compare")
                review_scene(engine, server, Path(tmp))
                page.goto(base + "/ui/review")
                save(page, args.out, "review")
                page.goto(base + "/ui/unknown")
                save(page, args.out, "unknowns")
                page.goto(base + "/ui/audit")
                save(page, args.out, "audit")
                page.goto(base + "/ui/keys")
                save(page, args.out, "keys")
                page.set_viewport_size({"width": 390, "height": 844})
                page.goto(base + "/ui/collections/staff")
                save(page, args.out, "phone-collection")
                browser.close()
        finally:
            server.thread.stop()
            gallery.store.close()


if __name__ == "__main__":
    main()
