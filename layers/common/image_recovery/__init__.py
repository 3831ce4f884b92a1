"""Image Recovery: find travel records missing their cover image and regenerate them."""
