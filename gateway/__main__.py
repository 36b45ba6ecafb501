"""`python -m gateway` is `footage-gateway`."""

from gateway.cli import main

raise SystemExit(main())
