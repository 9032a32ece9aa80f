"""The patient blueprint: views, forms, the next-screen rule."""
