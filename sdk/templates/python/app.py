"""{{name}}: a Portcullis plugin in Python.

Answers 400 when the request lacks the configured header, and marks the requests it lets
through. Change it to what your plugin should do; README.md says how to build and test it.
"""

import portcullis
from portcullis import Phases, problem


class Plugin(portcullis.Plugin):
    phases = Phases.ON_REQUEST

    def configure(self, config):
        self.header = config.get("header", "x-tenant")
        if not isinstance(self.header, str) or not self.header:
            raise ValueError("`header` must be a header name")

    def on_request(self, request):
        if request.header(self.header) is None:
            return problem(400, "Bad Request", f"the {self.header} header is required")
        request.set_header("x-{{name}}", "checked")
        print(f"{self.header} present")
        return None


Handler = portcullis.export(Plugin)
