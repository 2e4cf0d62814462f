import sys

from trimnet.cli.main import main

sys.exit(main())
