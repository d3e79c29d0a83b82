"""Browser tier: what lstrace sends, rendered by a real Label Studio in headless Chromium."""
