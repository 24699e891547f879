"""A real RTSP server for the tests: GStreamer's gst-rtsp-server (Debian ``gir1.2-gst-rtsp-server-1.0``) with
HTTP Basic authentication, serving a live H.264 test pattern at ``/live``.

Runs under the *system* Python (``/usr/bin/python3``, which has python3-gi), not the project's venv::

    /usr/bin/python3 tests/video/rtsp_server.py PORT USER PASSWORD

Prints ``READY`` once it listens; runs until killed.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=15/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def main() -> None:
    port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_service(port)
    server.set_address("127.0.0.1")
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "camera-user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("camera-user", "media.factory.access", True)
    permissions.add_permission_for_role("camera-user", "media.factory.construct", True)
    factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit("cannot listen")
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
