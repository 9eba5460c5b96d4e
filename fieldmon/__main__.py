import sys

from fieldmon.cli import main

sys.exit(main())
