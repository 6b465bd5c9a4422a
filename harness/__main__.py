from harness.cli import main

if __name__ == "__main__":  # not in a process spawned by multiprocessing, which imports it
    main()
