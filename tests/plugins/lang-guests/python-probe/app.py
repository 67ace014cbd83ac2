"""A probe for the gateway's tests: what a Python plugin sees of its sandbox, and how its
failures end. The `x-probe` request header says what to do."""

import random
import time

import portcullis


class Probe(portcullis.Plugin):
    def configure(self, config):
        self.tag = config.get("tag", "probe")

    def on_request(self, request):
        what = request.header("x-probe") or "sample"
        if what == "pass":
            # Nothing: the cost of a call itself, for the benches.
            return None
        if what == "sample":
            # Random state and both clocks, for the upstream to echo.
            request.set_header("x-random", repr(random.random()))
            request.set_header("x-wall-ns", str(time.time_ns()))
            request.set_header("x-monotonic-ns", str(time.monotonic_ns()))
            return None
        if what == "print":
            print(f"{self.tag}: print from {request.path()}")
            return None
        if what == "deny":
            return portcullis.problem(403, "Forbidden", "the probe was asked to deny")
        if what == "raise":
            raise ValueError("the probe was asked to fail")
        if what == "spin":
            while True:
                pass
        if what == "grow":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        raise KeyError(what)


Handler = portcullis.export(Probe)
