"""An HTTP translation server: batched decoding behind a small FastAPI app and a static web page.

app.py holds the API, batcher.py joins concurrent requests into one model call, server.py starts
uvicorn, static/ is the page served at /. Needs the serve extra: pip install -e ".[serve]".
"""
