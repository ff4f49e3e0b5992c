"""Knowledge: semantic search over a Chroma vector store, served on the mesh."""
