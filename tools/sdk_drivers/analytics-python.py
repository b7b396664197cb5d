"""Sends one identify and track through segment-analytics-python to the capture server at
http://127.0.0.1:$PORT, then flushes (one /v1/batch request; gzip-compressed when GZIP=1)."""
import os

import segment.analytics as analytics

analytics.write_key = "wk_fixture"
analytics.host = f"http://127.0.0.1:{os.environ['PORT']}"
analytics.gzip = os.environ.get("GZIP") == "1"
analytics.identify("python-user-1", {"email": "python@example.com", "plan": "free", "ltv": 12})
analytics.track("python-user-1", "Signed Up", {"source": "fixture"})
analytics.flush()
analytics.shutdown()
