from attrib_audit.cli import main

main()
