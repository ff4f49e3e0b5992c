"""Gateway: HTTP and the A2A protocol in front of the mesh."""
