"""The end-to-end demo behind ``make demo`` (:func:`reasonir_rag.demo.run.run_demo`)."""
