from scripts.cli.main import main

raise SystemExit(main())
