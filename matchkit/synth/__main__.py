"""``python -m matchkit.synth --sample sample_data/`` writes the bundled sample; other options as ``matchkit synth``."""

from __future__ import annotations

import sys

from matchkit.cli.synth import main

sys.exit(main())
