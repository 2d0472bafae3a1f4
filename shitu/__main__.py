from shitu.cli import main

main()
