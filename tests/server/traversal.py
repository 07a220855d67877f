"""The catalogue of path-traversal spellings, as they appear in a request target (already
percent-encoded where the spelling is an encoding). Any test that sends a name or path
to the server can use it; test_traversal.py sends each to every route with a path
parameter. Spellings from MLflow's path-traversal CVEs and the usual filter bypasses."""

from __future__ import annotations

SPELLINGS: dict[str, str] = {
    "dot-dot": "../../../../etc/passwd",
    "dot-dot-one": "..",
    "dot": ".",
    "encoded dots": "%2e%2e/%2e%2e/etc/passwd",
    "encoded dots upper": "%2E%2E%2Fetc%2Fpasswd",
    "encoded slash": "..%2f..%2fetc%2fpasswd",
    "double-encoded": "%252e%252e%252fetc%252fpasswd",
    "double-encoded slash": "..%252f..%252fetc%252fpasswd",
    "backslash": "..\\..\\etc\\passwd",
    "encoded backslash": "..%5c..%5cetc%5cpasswd",
    "tomcat semicolon": "..;/..;/etc/passwd",
    "semicolon segment": "name/..;/..;/etc/passwd",
    "double slash": "//etc/passwd",
    "absolute": "/etc/passwd",
    "inner double slash": "a//b",
    "file uri": "file:///etc/passwd",
    "file uri encoded": "file:%2f%2f%2fetc%2fpasswd",
    "file scheme segment": "file:/etc/passwd",
    "nul": "name%00.txt",
    "nul dot-dot": "..%00/etc/passwd",
    "control": "name%0a",
    "overlong dot": "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "overlong slash": "..%c0%af..%c0%afetc%c0%afpasswd",
    "overlong 3-byte dot": "%e0%80%ae%e0%80%ae/etc/passwd",
    "broken utf-8": "%ff%fe",
    "mixed": "..%2F..\\%2e%2e/etc/passwd",
    "four dots": "....//....//etc/passwd",
    "windows drive": "C:%5cWindows%5cwin.ini",
    "unc": "\\\\server\\share",
}
"""name -> the spelling, as it is placed into the request target."""
