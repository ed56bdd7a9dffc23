import sys

from matchkit.cli.main import main

sys.exit(main())
