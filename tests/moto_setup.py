"""Run with the moto venv's Python: create an IAM user whose key may use S3, and a bucket.

Prints the key as JSON. The moto server enforces authentication after its first three
requests (INITIAL_NO_AUTH_ACTION_COUNT=3), which these IAM calls use up, so wrong
credentials are refused like on AWS.
"""

import json
import sys

import boto3

url, bucket = sys.argv[1], sys.argv[2]
setup = {"endpoint_url": url, "region_name": "us-east-1"}
iam = boto3.client("iam", aws_access_key_id="setup", aws_secret_access_key="setup", **setup)
iam.create_user(UserName="ci")
key = iam.create_access_key(UserName="ci")["AccessKey"]
policy = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}
iam.put_user_policy(UserName="ci", PolicyName="s3", PolicyDocument=json.dumps(policy))
creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
boto3.client("s3", **creds, **setup).create_bucket(Bucket=bucket)
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
