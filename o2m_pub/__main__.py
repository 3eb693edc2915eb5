from o2m_pub.cli import main

main()
