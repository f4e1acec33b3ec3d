"""The retrieval stage: builds the recall indexes (text, item embeddings) serving retrieves candidates with."""
