// Camera and microphone helpers (filled in with the device test).
