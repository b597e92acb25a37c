"""The live pipeline: a camera thread fills a ring buffer; a recorder and live processing consume it."""
