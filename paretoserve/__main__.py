from paretoserve.cli import main

raise SystemExit(main())
