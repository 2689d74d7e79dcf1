"""Pure DataFrame -> DataFrame metric functions. Nothing here touches a warehouse, a file or a clock:
every input arrives as a DataFrame and the snapshot date as a parameter."""
