"""Delivery confirmation: following each Log ID through Redox's Platform API until Redox reports it
delivered.
"""
