"""Tables, plots and Markdown/HTML reports of simulation results."""
