import sys

from demo.distill.cli import main

sys.exit(main())
