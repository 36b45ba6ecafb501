"""The web console: static HTML, CSS and ES modules at /console/ (contract §5, docs/console.md).

No build step: the files under `static/` are what the browser runs. Every byte of API data is
rendered as text (textContent / createElement), and the Content-Security-Policy in `routes`
forbids inline script and style, so a hostile string in the audit log stays a string.
"""
