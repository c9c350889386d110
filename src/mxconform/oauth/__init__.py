"""The OAuth 2.0 API: the client, login drivers, test users, the UIA refusal attempts."""
