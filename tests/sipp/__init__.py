"""sipp scenarios and the tools around them: RTP captures to replay, and to record."""
