"""The build_marts stage. Every module but one holds pure DataFrame -> DataFrame metric functions:
nothing there touches a warehouse, a file or a clock; every input arrives as a DataFrame and the
snapshot date as a parameter. `build` is the one that reads the lake and writes the marts back
to it, composing those functions for one snapshot."""
